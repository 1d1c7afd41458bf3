"""E-mail notifications (R5.4, R3.4): templates, the SMTP notifier and the outbox worker."""

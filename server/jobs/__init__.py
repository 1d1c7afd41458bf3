"""Scheduled jobs (R8.7): schedules, the job table, the runner and the scheduler."""

"""The business register (Poslovni register Slovenije) behind a small interface (R2.2).

Now an offline fixture file; a real register client later implements the same Protocol.
"""

"""JSON handlers: parse → one service call → serialise."""

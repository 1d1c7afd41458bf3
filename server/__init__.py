"""VEP — a qualified electronic registered delivery service (QERDS) in the style of VEP.SI."""

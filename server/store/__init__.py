"""PostgreSQL access: asyncpg only, raw SQL with ``$n`` parameters, rows → frozen dataclasses.

One store method is one named statement or one transaction (house rule 2).
"""

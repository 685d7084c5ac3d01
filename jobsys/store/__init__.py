"""Persistence: column types (``types``), engines and URLs (``db``), the tables
(``models``) and schema migrations (``migrate``).

Nothing is imported here, so ``import jobsys.store.db`` does not load the models.
"""

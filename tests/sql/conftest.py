from tests.sql.database_fixtures import emulator, migrated_database, new_database, postgres, reports_db

__all__ = ["emulator", "migrated_database", "new_database", "postgres", "reports_db"]

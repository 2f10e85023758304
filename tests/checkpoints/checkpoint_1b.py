# Seed checkpoint 1B (test_database.py), as written in PHASE1.md.
from src.database.connection import DatabaseConnection
from src.utils.config import Config

config = Config()
db = DatabaseConnection(config.database_url)

# Test connection
assert db.test_connection(), "Database connection failed"

# Create tables
db.create_tables()
print("✅ Database setup complete")

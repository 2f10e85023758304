# Seed checkpoint 1A, as written in PHASE1.md.
from src.utils.config import Config

c = Config()
print('Config loaded:', c.assets)

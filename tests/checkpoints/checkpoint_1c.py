# Seed checkpoint 1C (test_data_pipeline.py), as written in PHASE1.md.
from src.data.fetcher import ExchangeDataFetcher
from src.database.operations import DatabaseOperations
from src.utils.config import Config

# Test data fetching
fetcher = ExchangeDataFetcher()
btc_data = fetcher.fetch_historical_data('BTC/USDT', days=2)  # Small test
print(f"✅ Fetched {len(btc_data)} BTC candles")

# Test database saving
config = Config()
db_ops = DatabaseOperations(config.database_url)

if len(btc_data) > 0:
    candles = btc_data[['timestamp', 'open', 'high', 'low', 'close', 'volume']].values.tolist()
    # Convert timestamp to milliseconds
    candles = [[int(row[0].timestamp() * 1000)] + list(row[1:]) for row in candles]

    saved = db_ops.save_ohlcv_data('BTC/USDT', '1h', candles)
    print(f"✅ Saved {saved} candles to database")

    # Test retrieval
    retrieved = db_ops.get_latest_candles('BTC/USDT', limit=10)
    print(f"✅ Retrieved {len(retrieved)} candles from database")

    # Verify data integrity
    if len(retrieved) > 0:
        print(f"✅ Data integrity check passed")
        print(f"   Latest candle: {retrieved.iloc[-1]['timestamp']}")
        print(f"   Price range: ${retrieved['low'].min():.2f} - ${retrieved['high'].max():.2f}")

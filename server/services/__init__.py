"""Domain rules. No aiohttp imports here: handlers call these, these call the stores."""

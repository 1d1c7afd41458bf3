"""Browser views (aiohttp-jinja2) over the same services; Slovenian first, English second."""

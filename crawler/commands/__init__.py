"""Project commands for Scrapy's CLI (COMMANDS_MODULE): they replace the built-ins of the same name."""

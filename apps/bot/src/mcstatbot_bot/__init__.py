"""mcstatbot bot service: the Telegram bot (webhook or long polling) in front of the query service."""

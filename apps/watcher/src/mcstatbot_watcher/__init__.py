"""mcstatbot watcher: scheduled checks of watched servers and their alerts."""

"""trajopt_loader.store."""

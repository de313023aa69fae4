"""trajopt_loader.robots."""

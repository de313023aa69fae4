"""trajopt_loader.transforms."""

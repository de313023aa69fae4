"""trajopt_loader.pipeline."""

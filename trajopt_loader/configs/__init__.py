"""trajopt_loader.configs."""

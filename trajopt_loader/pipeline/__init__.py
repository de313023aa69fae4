"""Grain pipeline of trajopt-loader: schedules (sources), dataset builder, device prefetch."""

from trajopt_loader.pipeline import schedules
from trajopt_loader.pipeline.dataset import make_dataset
from trajopt_loader.pipeline.device import device_iterator
from trajopt_loader.pipeline.feedback import FailureFeedback, FeedbackTimeoutError

__all__ = ["FailureFeedback", "FeedbackTimeoutError", "device_iterator", "make_dataset",
           "schedules"]

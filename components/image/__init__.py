"""A guest image as a Pulumi component: `Image(name, ImageArgs(...))`, imported into each pool that uses it."""
from .component import Image, ImageArgs, ImageVolumes

__all__ = ["Image", "ImageArgs", "ImageVolumes"]

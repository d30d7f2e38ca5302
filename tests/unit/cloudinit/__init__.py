"""Unit tests of components/cloudinit/."""

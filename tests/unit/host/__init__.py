"""Unit tests of components/host/."""

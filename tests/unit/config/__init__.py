"""Unit tests of components/config/."""

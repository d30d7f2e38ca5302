"""The KubeVirt backend: a desktop as a VirtualMachine, a CDI DataVolume and a cloud-init Secret."""

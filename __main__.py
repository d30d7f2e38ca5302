"""vdesk's Pulumi program: read the stack's configuration, declare its components."""
from components.config.loader import main

main()

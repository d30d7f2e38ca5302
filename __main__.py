"""vdesk's Pulumi program: read the stack's configuration, declare its components."""
from components.sdk_quiet import quiet_sdk_debug
from components.config.loader import main

quiet_sdk_debug()
main()

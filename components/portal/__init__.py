"""The portal: where the people a host's desktops are for sign in, see theirs, start, stop and open them."""

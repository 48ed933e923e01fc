"""Chat commands: one command handler (``commands``) behind two transports.

``ssh`` serves it over SSH (public keys only) when ``ETL_SSH_PORT`` is set; ``discord_bot``
answers ``!``-prefixed messages when ``DISCORD_TOKEN`` is set. ``service`` starts and stops
whichever the environment asks for, with the node runtime. See docs/chat.md.
"""

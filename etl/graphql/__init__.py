"""The read-only GraphQL API served at ``/graphql`` on every node (DESIGN.md, "GraphQL").

``types`` maps the models, ``filters`` holds what clients may filter and order by,
``limits`` what they may ask for at most, ``schema`` puts them together and ``view``
serves it. Nothing here touches the database at import time.
"""

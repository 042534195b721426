"""A module with no routing lists: include()-ing it into a URLRouter must be refused."""

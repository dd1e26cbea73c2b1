"""MTEB through mteb itself: the encoder bridge mteb calls, local dataset mirrors, ``data pull``."""

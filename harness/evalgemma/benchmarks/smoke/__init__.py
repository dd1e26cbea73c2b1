"""The built-in offline smoke suite: the project's own texts as mteb tasks scored by mteb's evaluators."""

"""Tasks that only the tests load, through the plugin hook (DRAGON_TASK_MODULES) that a
third-party task uses."""

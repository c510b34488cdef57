"""Game days: a suite of Chaos Toolkit experiments run through the ``chaos`` CLI and judged."""

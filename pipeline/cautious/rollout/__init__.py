"""Moving a cluster from one release to another: plan (pure), strategies, runner, journal."""

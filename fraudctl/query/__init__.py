"""Questions over the lake and the live database: named queries, Athena dialect translation,
and partition projection shared by both engines."""

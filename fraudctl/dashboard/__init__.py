"""`fraudctl dashboard`: the live web dashboard of a stack, on the dashboards' named SQL."""

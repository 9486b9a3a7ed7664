"""Tests of locust_ext/shapes/ and locust_ext/iterations/: shapes, profiles, the iteration limit, the open model."""

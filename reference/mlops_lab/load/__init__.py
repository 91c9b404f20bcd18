"""Load testing and production-like traffic: the locust runner and its SLO verdict, steady traffic."""

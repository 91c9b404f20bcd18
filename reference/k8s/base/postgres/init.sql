-- Runs once, when the data directory is first initialised (docker-entrypoint-initdb.d).
-- POSTGRES_DB (mlops) holds the prediction store; MLflow gets its own database.
CREATE DATABASE mlflow;

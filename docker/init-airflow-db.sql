-- Airflow's metadata database, beside the Pulse warehouse.
create database airflow;

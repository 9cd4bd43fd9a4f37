-- Run once by the mariadb image on an empty data volume: the tables' database (MARIADB_DATABASE, made by the image)
-- and Dagster's instance database, both for the gamerec user.
CREATE DATABASE IF NOT EXISTS dagster;
GRANT ALL PRIVILEGES ON dagster.* TO 'gamerec'@'%';

-- One database per service (CONTRACT.md section 1), owned by the `linkage`
-- role the postgres image creates from POSTGRES_USER. The image runs this
-- once, when it initialises an empty data volume (docker-entrypoint-initdb.d);
-- each service creates its own tables at start.
CREATE DATABASE intake OWNER linkage;
CREATE DATABASE dispatch OWNER linkage;
CREATE DATABASE escalation OWNER linkage;
CREATE DATABASE assessment OWNER linkage;

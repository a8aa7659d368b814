-- One database per service (CONTRACT.md section 1), each owned by the
-- service's own role and closed to every other role: dispatch cannot read
-- intake's reporters. Run once, by a superuser, with psql 15 or later:
--   LINKAGE_DB_PASSWORD_INTAKE=... LINKAGE_DB_PASSWORD_DISPATCH=... \
--   LINKAGE_DB_PASSWORD_ESCALATION=... LINKAGE_DB_PASSWORD_ASSESSMENT=... \
--   psql -v ON_ERROR_STOP=1 -U postgres -f deploy/postgres/init.sql
-- The postgres image runs it the same way when it initialises an empty data
-- volume (docker-entrypoint-initdb.d; docker-compose.yml passes the
-- passwords). A password missing from the environment stops it with a syntax
-- error at `:'..._password'`: no role is created without one.
-- Each service then connects as its own role (`<SERVICE>_DATABASE_URL`, e.g.
-- postgresql+psycopg2://dispatch:...@postgres:5432/dispatch?sslmode=verify-full)
-- and `python -m services.<name> migrate` creates the tables as that role, so
-- it owns them too.
\getenv intake_password LINKAGE_DB_PASSWORD_INTAKE
\getenv dispatch_password LINKAGE_DB_PASSWORD_DISPATCH
\getenv escalation_password LINKAGE_DB_PASSWORD_ESCALATION
\getenv assessment_password LINKAGE_DB_PASSWORD_ASSESSMENT

CREATE ROLE intake LOGIN PASSWORD :'intake_password';
CREATE DATABASE intake OWNER intake;
REVOKE ALL ON DATABASE intake FROM PUBLIC;
GRANT CONNECT ON DATABASE intake TO intake;

CREATE ROLE dispatch LOGIN PASSWORD :'dispatch_password';
CREATE DATABASE dispatch OWNER dispatch;
REVOKE ALL ON DATABASE dispatch FROM PUBLIC;
GRANT CONNECT ON DATABASE dispatch TO dispatch;

CREATE ROLE escalation LOGIN PASSWORD :'escalation_password';
CREATE DATABASE escalation OWNER escalation;
REVOKE ALL ON DATABASE escalation FROM PUBLIC;
GRANT CONNECT ON DATABASE escalation TO escalation;

CREATE ROLE assessment LOGIN PASSWORD :'assessment_password';
CREATE DATABASE assessment OWNER assessment;
REVOKE ALL ON DATABASE assessment FROM PUBLIC;
GRANT CONNECT ON DATABASE assessment TO assessment;

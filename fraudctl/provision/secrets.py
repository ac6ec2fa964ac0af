"""The database's login secrets, one step each, over either target's `Secrets` port.

Each password is generated once, by the step that creates its secret; the first writer wins
(`Secrets.create`), so a resumed or concurrent `up` never replaces a password behind the
database's back.
"""

from __future__ import annotations

import secrets
from functools import partial

from fraudctl import naming
from fraudctl.ports import Secrets
from fraudctl.provision.plan import Plan, Step, StepResult

# (purpose, the role that logs in with it)
DB_LOGINS = ((naming.DB_ADMIN_PURPOSE, naming.DB_ADMIN_USER),
             (naming.DB_APP_PURPOSE, naming.DB_APP_USER),
             (naming.DB_READER_PURPOSE, naming.DB_READER_USER))


def new_password() -> str:
    # URL-safe: valid in a libpq connection string and in RDS's allowed characters.
    return secrets.token_urlsafe(32)


def plan_db_secrets(plan: Plan, store: Secrets, names: naming.StackNames, *, kept_as: str,
                    calls: tuple[str, ...]) -> None:
    """A create step per login secret not there yet; ``kept_as`` says where it is kept."""
    for purpose, user in DB_LOGINS:
        name = names.secret(purpose)
        key = f"secret/{purpose}"
        if store.exists(name):
            plan.found(key, f"secret {name}", name=name)
            continue

        plan.add(Step("secret", name, "create", f"generated password for {user}, {kept_as}",
                      partial(_create_login, store, name, user), calls, key,
                      desired={"name": name, "username": user, "dbname": naming.DB_NAME,
                               "password": "generated on apply, never shown"}))


def _create_login(store: Secrets, name: str, user: str) -> StepResult:
    created = store.create(name, {"username": user, "password": new_password(),
                                  "engine": "postgres", "dbname": naming.DB_NAME})
    return {"name": name, "created": created}

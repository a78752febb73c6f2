"""The emulator's `/graphql`: the slice of Speckle's schema that sign-in, token management and specklepy's
`SpeckleClient` (authenticate_with_token, active_user.get/get_projects, server.get/version/apps/create_token/
revoke_token) use, with Speckle's scope rules and Apollo's way of reporting errors.

`run` takes a decoded request body and answers (HTTP status, JSON payload); no Tornado here.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from ._state import ALL_SCOPES, App, Rejected, State, Token, TokenCreateError, User, missing_scope_message

try:
    from graphql import (
        GraphQLError,
        GraphQLObjectType,
        GraphQLResolveInfo,
        GraphQLScalarType,
        IntValueNode,
        StringValueNode,
        ValueNode,
        build_schema,
        execute_sync,
        parse,
        validate,
    )
except ImportError as err:  # the emulator is an extra: say how to get it
    raise ImportError(
        'The Speckle emulator needs graphql-core: pip install "speckle-nb-auth[emulator]"', name="graphql"
    ) from err

__all__ = ["SERVER_VERSION", "Context", "run"]

SERVER_VERSION = "2.26.1"

_SDL = """
scalar DateTime
scalar BigInt

type Query {
  activeUser: User
  serverInfo: ServerInfo!
  app(id: String!): ServerApp
  apps: [ServerAppListItem]
  authenticatedAsApp: ServerAppListItem
}

type Mutation {
  apiTokenCreate(token: ApiTokenCreateInput!): String!
  apiTokenRevoke(token: String!): Boolean!
  appRevokeAccess(appId: String!): Boolean
}

input ApiTokenCreateInput {
  scopes: [String!]!
  name: String!
  lifespan: BigInt
}

input UserProjectsFilter {
  search: String
  onlyWithRoles: [String!]
  workspaceId: ID
  personalOnly: Boolean
  includeImplicitAccess: Boolean
}

type User {
  id: ID!
  name: String
  email: String
  company: String
  avatar: String
  bio: String
  verified: Boolean
  role: String
  createdAt: DateTime
  apiTokens: [ApiToken!]!
  projects(limit: Int! = 25, cursor: String, filter: UserProjectsFilter): UserProjectCollection!
}

type ApiToken {
  id: String!
  name: String!
  scopes: [String]!
  lifespan: BigInt!
  createdAt: DateTime!
  lastUsed: DateTime!
}

enum ProjectVisibility {
  PRIVATE
  PUBLIC
  UNLISTED
  WORKSPACE
}

type Project {
  id: ID!
  name: String!
  description: String
  visibility: ProjectVisibility!
  allowPublicComments: Boolean!
  role: String
  createdAt: DateTime!
  updatedAt: DateTime!
  sourceApps: [String!]!
  workspaceId: String
}

type UserProjectCollection {
  totalCount: Int!
  cursor: String
  items: [Project!]!
}

type Scope {
  name: String!
  description: String!
}

type AuthStrategy {
  id: String!
  name: String!
  icon: String!
  url: String!
  color: String
}

type ServerWorkspacesInfo {
  workspacesEnabled: Boolean!
}

type ServerInfo {
  name: String!
  company: String
  description: String
  adminContact: String
  canonicalUrl: String
  termsOfService: String
  inviteOnly: Boolean
  version: String
  scopes: [Scope!]!
  authStrategies: [AuthStrategy!]!
  workspaces: ServerWorkspacesInfo!
}

type AppAuthor {
  id: String!
  name: String!
  avatar: String
}

type ServerApp {
  id: String!
  name: String!
  description: String
  termsAndConditionsLink: String
  logo: String
  public: Boolean
  trustByDefault: Boolean
  author: AppAuthor
  createdAt: DateTime!
  redirectUrl: String!
  scopes: [Scope!]!
}

type ServerAppListItem {
  id: String!
  name: String!
  description: String
  termsAndConditionsLink: String
  logo: String
  trustByDefault: Boolean
  author: AppAuthor
}
"""


@dataclass(frozen=True)
class Context:
    """One request: the state, the token it carries (None: anonymous), and the URL it reached us at."""

    state: State
    token: Token | None
    server_url: str


Resolver = Callable[..., Any]


# --- scalars ------------------------------------------------------------------------------------------------


def _iso(value: float) -> str:
    moment = datetime.fromtimestamp(value, timezone.utc)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _big_int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise TypeError(f"BigInt cannot represent {value!r}")
    return int(value)


def _big_int_literal(node: ValueNode, _variables: Any = None) -> int:
    if not isinstance(node, (IntValueNode, StringValueNode)):
        raise TypeError("BigInt cannot represent a non-integer value")
    return int(node.value)


# --- helpers ------------------------------------------------------------------------------------------------


def _require(info: GraphQLResolveInfo, scope: str) -> Token:
    """The request's token, when it holds `scope`; else Speckle's FORBIDDEN error."""
    token = info.context.token
    if token is None or scope not in token.scopes:
        raise GraphQLError(
            missing_scope_message(scope), extensions={"code": "FORBIDDEN", "scope": scope, "statusCode": 403}
        )
    return token


def _scopes(names: tuple[str, ...] | list[str]) -> list[dict[str, str]]:
    return [{"name": name, "description": ALL_SCOPES[name]} for name in names]


def _author(state: State, app: App) -> dict[str, Any] | None:
    if app.author_id is None:  # the built-in apps
        return None
    author = state.user(app.author_id)
    return {"id": author.id, "name": author.name, "avatar": None}


def _app_item(state: State, app: App) -> dict[str, Any]:
    return {
        "id": app.id,
        "name": app.name,
        "description": app.description,
        "termsAndConditionsLink": None,
        "logo": None,
        "trustByDefault": app.trusted,
        "author": _author(state, app),
    }


def _avatar(name: str) -> str:
    """Initials on a disc, as a data URL: Speckle serves avatars as data URLs too."""
    initials = "".join(part[0] for part in name.split()[:2]).upper()
    svg = (
        '<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64"><circle cx="32" cy="32" r="32" '
        'fill="#0a66ff"/><text x="32" y="41" font-family="sans-serif" font-size="26" fill="#fff" '
        f'text-anchor="middle">{html.escape(initials)}</text></svg>'
    )
    return "data:image/svg+xml;base64," + base64.b64encode(svg.encode()).decode("ascii")


def _user(user: User) -> dict[str, Any]:
    """The fields anyone holding profile:read sees; email, apiTokens and projects have their own resolvers."""
    return {
        "id": user.id,
        "name": user.name,
        "company": user.company,
        "avatar": _avatar(user.name),
        "bio": user.bio,
        "verified": True,
        "role": user.role,
        "createdAt": _iso(user.created_at),
    }


# --- Query --------------------------------------------------------------------------------------------------


def _active_user(_root: None, info: GraphQLResolveInfo) -> dict[str, Any] | None:
    if info.context.token is None:  # anonymous: no error, just nobody
        return None
    token = _require(info, "profile:read")
    return _user(info.context.state.user(token.user_id))


def _server_info(_root: None, info: GraphQLResolveInfo) -> dict[str, Any]:
    return {
        "name": "Speckle Emulator",
        "company": "speckle-nb-auth",
        "description": "A local Speckle server for notebooks, tests and classes without internet.",
        "adminContact": "ada@example.com",
        "canonicalUrl": info.context.server_url,
        "termsOfService": None,
        "inviteOnly": False,
        "version": SERVER_VERSION,
        "scopes": _scopes(list(ALL_SCOPES)),
        "authStrategies": [
            {"id": "local", "name": "Local", "icon": "TODO", "url": "/auth/local", "color": None}
        ],
        "workspaces": {"workspacesEnabled": False},
    }


def _app(_root: None, info: GraphQLResolveInfo, id: str) -> dict[str, Any] | None:
    state: State = info.context.state
    app = state.app(id)
    if app is None:
        return None
    return {
        **_app_item(state, app),
        "public": app.public,
        "createdAt": _iso(app.created_at),
        "redirectUrl": app.redirect_url,
        "scopes": _scopes(app.scopes),
    }


def _apps(_root: None, info: GraphQLResolveInfo) -> list[dict[str, Any]]:
    state: State = info.context.state
    return [_app_item(state, app) for app in state.apps()]


def _authenticated_as_app(_root: None, info: GraphQLResolveInfo) -> dict[str, Any] | None:
    token = _require(info, "apps:read")
    state: State = info.context.state
    app = state.app(token.app_id) if token.app_id else None
    return _app_item(state, app) if app else None


# --- User ---------------------------------------------------------------------------------------------------


def _email(user: dict[str, Any], info: GraphQLResolveInfo) -> str | None:
    token = info.context.token
    if token is None or "profile:email" not in token.scopes:
        return None
    return info.context.state.user(user["id"]).email


def _api_tokens(user: dict[str, Any], info: GraphQLResolveInfo) -> list[dict[str, Any]]:
    _require(info, "tokens:read")
    return [
        {
            "id": t.id,
            "name": t.name,
            "scopes": list(t.scopes),
            "lifespan": t.lifespan_ms,
            "createdAt": _iso(t.created_at),
            "lastUsed": _iso(t.last_used),
        }
        for t in info.context.state.personal_tokens(user["id"])
    ]


def _projects(
    user: dict[str, Any],
    info: GraphQLResolveInfo,
    limit: int,
    cursor: str | None = None,
    filter: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    _require(info, "streams:read")
    projects = info.context.state.user(user["id"]).projects
    search = ((filter or {}).get("search") or "").lower()
    matching = [p for p in projects if search in p.name.lower()]
    start = int(cursor) if cursor and cursor.isdigit() else 0
    page = matching[start : start + max(limit, 0)]
    end = start + len(page)
    return {
        "totalCount": len(matching),
        "cursor": str(end) if end < len(matching) else None,
        "items": [
            {
                "id": p.id,
                "name": p.name,
                "description": p.description,
                "visibility": "PRIVATE",
                "allowPublicComments": False,
                "role": "stream:owner",
                "createdAt": _iso(p.created_at),
                "updatedAt": _iso(p.created_at),
                "sourceApps": [],
                "workspaceId": None,
            }
            for p in page
        ],
    }


# --- Mutation -----------------------------------------------------------------------------------------------


def _api_token_create(_root: None, info: GraphQLResolveInfo, token: Mapping[str, Any]) -> str:
    owner = _require(info, "tokens:write")
    try:
        return info.context.state.create_personal_token(
            owner, token["name"], list(token["scopes"]), token.get("lifespan")
        )
    except TokenCreateError as err:
        raise GraphQLError(str(err), extensions={"code": "TOKEN_CREATE_ERROR", "statusCode": 400}) from None


def _api_token_revoke(_root: None, info: GraphQLResolveInfo, token: str) -> bool:
    owner = _require(info, "tokens:write")
    try:
        info.context.state.revoke_token(owner.user_id, token)
    except Rejected as err:
        raise GraphQLError(str(err), extensions={"code": "BAD_USER_INPUT"}) from None
    return True


def _app_revoke_access(_root: None, info: GraphQLResolveInfo, appId: str) -> bool:
    owner = _require(info, "apps:write")
    info.context.state.revoke_app_access(owner.user_id, appId)
    return True


def _build() -> Any:
    schema = build_schema(_SDL)
    resolvers: dict[str, dict[str, Resolver]] = {
        "Query": {
            "activeUser": _active_user,
            "serverInfo": _server_info,
            "app": _app,
            "apps": _apps,
            "authenticatedAsApp": _authenticated_as_app,
        },
        "Mutation": {
            "apiTokenCreate": _api_token_create,
            "apiTokenRevoke": _api_token_revoke,
            "appRevokeAccess": _app_revoke_access,
        },
        "User": {"email": _email, "apiTokens": _api_tokens, "projects": _projects},
    }
    for type_name, fields in resolvers.items():
        gql_type = schema.type_map[type_name]
        assert isinstance(gql_type, GraphQLObjectType)
        for field_name, resolve in fields.items():
            gql_type.fields[field_name].resolve = resolve
    date_time = schema.type_map["DateTime"]
    big_int = schema.type_map["BigInt"]
    assert isinstance(date_time, GraphQLScalarType) and isinstance(big_int, GraphQLScalarType)
    big_int.serialize = _big_int  # type: ignore[method-assign]
    big_int.parse_value = _big_int  # type: ignore[method-assign]
    big_int.parse_literal = _big_int_literal  # type: ignore[method-assign,assignment]
    return schema


_SCHEMA = _build()


# --- the endpoint -------------------------------------------------------------------------------------------


def _formatted(error: GraphQLError, code: str) -> dict[str, Any]:
    """An error as Apollo writes it: every error has an `extensions.code`."""
    out: dict[str, Any] = dict(error.formatted)
    out["extensions"] = {"code": code, **(out.get("extensions") or {})}
    return out


def _bad_request(message: str) -> tuple[int, dict[str, Any]]:
    return 400, {"errors": [{"message": message, "extensions": {"code": "BAD_REQUEST"}}]}


def run(body: Any, context: Context) -> tuple[int, dict[str, Any]]:
    """Answer one GraphQL request as Speckle's Apollo server does: a request that cannot run (no query, a
    syntax error, an invalid query or variables) is HTTP 400; anything that ran is HTTP 200 with `data`, and
    with `errors` for the fields that failed."""
    if not isinstance(body, dict) or not isinstance(body.get("query"), str) or not body["query"].strip():
        return _bad_request(
            "GraphQL operations must contain a non-empty `query` or a `persistedQuery` extension."
        )
    variables = body.get("variables")
    if variables is not None and not isinstance(variables, dict):
        return _bad_request("`variables` in a POST body should be provided as an object.")
    operation = body.get("operationName")
    if operation is not None and not isinstance(operation, str):
        return _bad_request("`operationName` in a POST body must be a string if provided.")
    try:
        document = parse(body["query"])
    except GraphQLError as err:
        return 400, {"errors": [_formatted(err, "GRAPHQL_PARSE_FAILED")]}
    invalid = validate(_SCHEMA, document)
    if invalid:
        return 400, {"errors": [_formatted(e, "GRAPHQL_VALIDATION_FAILED") for e in invalid]}
    result = execute_sync(
        _SCHEMA, document, context_value=context, variable_values=variables, operation_name=operation
    )
    errors = result.errors or []
    if result.data is None and errors and all(e.path is None for e in errors):  # never started: bad variables
        return 400, {"errors": [_formatted(e, "BAD_USER_INPUT") for e in errors]}
    payload: dict[str, Any] = {"data": result.data}
    if errors:
        payload["errors"] = [_formatted(e, "INTERNAL_SERVER_ERROR") for e in errors]
    return 200, payload

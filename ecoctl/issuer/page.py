"""The sign-in page (and the signed-out one): plain HTML and CSS, no script, escaped by Jinja2."""

from __future__ import annotations

STYLE = """
:root { color-scheme: light dark; --accent: #4f46e5; --warn: #b45309; --bad: #b91c1c; }
* { box-sizing: border-box; }
body { margin: 0; min-height: 100vh; display: grid; place-items: center; padding: 1.5rem;
       font: 16px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
       background: linear-gradient(160deg, #eef2ff, #f8fafc 60%); color: #0f172a; }
main { width: 100%; max-width: 24rem; background: #fff; border-radius: 1rem; padding: 2rem;
       box-shadow: 0 10px 30px rgba(15, 23, 42, .12); }
.badge { display: inline-block; font-size: .75rem; font-weight: 600; letter-spacing: .04em;
         text-transform: uppercase; color: var(--warn); background: #fef3c7; border-radius: 999px;
         padding: .2rem .7rem; }
h1 { font-size: 1.4rem; margin: .8rem 0 .2rem; }
p.lead { margin: 0 0 1.4rem; color: #475569; font-size: .95rem; }
label { display: block; font-weight: 600; font-size: .9rem; margin: 1rem 0 .3rem; }
input { width: 100%; font: inherit; padding: .6rem .75rem; border: 1px solid #cbd5e1; border-radius: .5rem; }
input:focus { outline: 3px solid #c7d2fe; border-color: var(--accent); }
button { margin-top: 1.5rem; width: 100%; font: inherit; font-weight: 600; color: #fff; background: var(--accent);
         border: 0; border-radius: .5rem; padding: .7rem; cursor: pointer; }
button:hover, button:focus { background: #4338ca; }
.error { margin: 0 0 1rem; padding: .6rem .8rem; border-radius: .5rem; background: #fee2e2; color: var(--bad);
         font-size: .92rem; }
footer { margin-top: 1.4rem; font-size: .8rem; color: #64748b; }
@media (prefers-color-scheme: dark) {
  body { background: #0f172a; color: #e2e8f0; } main { background: #1e293b; }
  p.lead, footer { color: #94a3b8; } input { background: #0f172a; color: inherit; border-color: #475569; }
}
"""

SIGN_IN = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Development sign-in</title><style>{{ style }}</style></head>
<body><main>
<span class="badge">Development sign-in</span>
<h1>Sign in to {{ client }}</h1>
<p class="lead">A development user of the <strong>{{ ecosystem }}</strong> ecosystem (declared in
ecosystem.yaml under <code>core.signin.users</code>).</p>
{% if error %}<p class="error" role="alert" id="error">{{ error }}</p>{% endif %}
<form method="post" action="{{ action }}">
<input type="hidden" name="csrf" value="{{ csrf }}">
<label for="username">User name</label>
<input id="username" name="username" autocomplete="username" required autofocus value="{{ username }}">
<label for="password">Password</label>
<input id="password" name="password" type="password" autocomplete="current-password" required>
<button type="submit">Sign in</button>
</form>
<footer>Development only, never for real users: it stands in for Authentik. `ecoctl secrets password USER`
prints a user's password.</footer>
</main></body></html>"""

SIGNED_OUT = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Signed out</title><style>{{ style }}</style></head>
<body><main><span class="badge">Development sign-in</span><h1>You are signed out</h1>
<p class="lead">You can close this page.</p></main></body></html>"""


def sign_in(**values) -> str:
    from flask import render_template_string

    return render_template_string(SIGN_IN, style=STYLE, **values)


def signed_out() -> str:
    from flask import render_template_string

    return render_template_string(SIGNED_OUT, style=STYLE)

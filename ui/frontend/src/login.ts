// The page berthd answers the URL with the token with: it keeps the new session's secret
// (session.ts) and goes on to the dashboard, replacing the URL with the token in the
// history.

import { keepSecret } from "./session";

const given = (document.querySelector('meta[name="berth-session"]') as HTMLMetaElement | null)?.content ?? "";
if (given) keepSecret(given);
location.replace("/");

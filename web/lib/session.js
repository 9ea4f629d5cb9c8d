// Who the console is signed in as, kept in this tab's sessionStorage (gone when the tab closes; never sent
// anywhere but this server's API): a session's access and refresh tokens from signing in, or an API key (or
// the operator token) pasted in; and the organization the console works in.

const KEY = "outrigger.console";

export const session = {
  /** `{ credential, refreshToken?, organization?, kind: "session" | "key" }`, or null when signed out. */
  load() {
    try {
      return JSON.parse(sessionStorage.getItem(KEY));
    } catch {
      return null;
    }
  },
  save(value) {
    sessionStorage.setItem(KEY, JSON.stringify(value));
  },
  /** The answer of `POST /auth/login`, `/auth/refresh` or single sign-on. */
  signedIn(tokens) {
    this.save({ kind: "session", credential: tokens.accessToken, refreshToken: tokens.refreshToken, organization: tokens.organization });
  },
  withKey(credential) {
    this.save({ kind: "key", credential });
  },
  setOrganization(organization) {
    const current = this.load();
    if (current) this.save({ ...current, organization });
  },
  clear() {
    sessionStorage.removeItem(KEY);
  },
};

import { useEffect, useState } from "react";

/** Routes live under /studio/; the gateway answers index.html for every one of them. */
export const BASE = "/studio/";

export function currentRoute(): string {
  const path = location.pathname.startsWith(BASE) ? location.pathname.slice(BASE.length) : "";
  return path.replace(/\/+$/, "");
}

export function navigate(route: string) {
  history.pushState(null, "", BASE + route);
  window.dispatchEvent(new PopStateEvent("popstate"));
}

export function useRoute(): string {
  const [route, setRoute] = useState(currentRoute);
  useEffect(() => {
    const update = () => setRoute(currentRoute());
    window.addEventListener("popstate", update);
    return () => window.removeEventListener("popstate", update);
  }, []);
  return route;
}

/** A link that moves inside the app without reloading it. */
export function linkProps(route: string) {
  return {
    href: BASE + route,
    onClick: (event: { preventDefault(): void; metaKey: boolean; ctrlKey: boolean; button: number }) => {
      if (event.metaKey || event.ctrlKey || event.button !== 0) return;
      event.preventDefault();
      navigate(route);
    },
  };
}

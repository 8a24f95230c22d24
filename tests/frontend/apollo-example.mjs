// Apollo Client 3 and medrec: queries and mutations over HTTP, subscriptions over
// graphql-transport-ws, `patients` paged with relayStylePagination. Runs as it is under Node
// (`MEDREC_TOKEN=<a token medrec dev printed> node apollo-example.mjs`); in a browser app, drop
// the `ws` import and `webSocketImpl`. The README shows this file; tests/frontend runs it.
import { ApolloClient, HttpLink, InMemoryCache, gql, split } from "@apollo/client/core/index.js";
import { GraphQLWsLink } from "@apollo/client/link/subscriptions/index.js";
import { getMainDefinition, relayStylePagination } from "@apollo/client/utilities/index.js";
import { createClient } from "graphql-ws";
import WebSocket from "ws";

const url = process.env.MEDREC_URL ?? "http://127.0.0.1:8000";
const token = process.env.MEDREC_TOKEN; // in an app: the signed-in user's Cognito ID token

const httpLink = new HttpLink({
  uri: `${url}/graphql`,
  headers: { Authorization: `Bearer ${token}` },
});
const wsClient = createClient({
  url: `${url.replace(/^http/, "ws")}/graphql`,
  // The token goes in `connection_init`: browsers cannot set headers on a WebSocket.
  connectionParams: () => ({ Authorization: `Bearer ${token}` }),
  webSocketImpl: WebSocket, // Node only: browsers have their own
});
const client = new ApolloClient({
  // Sent as the apollographql-client-name and -version headers.
  clientAwareness: { name: "medrec-example", version: "1.0.0" },
  link: split(
    ({ query }) => {
      const definition = getMainDefinition(query);
      return definition.kind === "OperationDefinition" && definition.operation === "subscription";
    },
    new GraphQLWsLink(wsClient),
    httpLink,
  ),
  cache: new InMemoryCache({
    // One list per filter; fetchMore appends each page after `endCursor`.
    typePolicies: { Query: { fields: { patients: relayStylePagination(["filter"]) } } },
  }),
});

const PATIENTS = gql`
  query Patients($first: Int!, $after: String) {
    patients(first: $first, after: $after) {
      totalCount
      edges { cursor node { id mrn familyName } }
      pageInfo { hasNextPage endCursor }
    }
  }
`;
const STATUS_CHANGES = gql`
  subscription StatusChanges($afterSequence: String) {
    recordStatusChanged(afterSequence: $afterSequence) {
      sequence
      status
      record { id }
    }
  }
`;

// Two pages of patients, merged into one list by relayStylePagination (with React: useQuery's
// data and fetchMore).
const pageSize = Number(process.env.PAGE_SIZE ?? 5);
const variables = { first: pageSize };
const { data: firstPage } = await client.query({ query: PATIENTS, variables });
await client
  .watchQuery({ query: PATIENTS, variables })
  .fetchMore({ variables: { after: firstPage.patients.pageInfo.endCursor } });
const merged = client.readQuery({ query: PATIENTS, variables }).patients;
console.log(JSON.stringify({
  firstPage: firstPage.patients.edges.map((edge) => edge.node.mrn),
  merged: merged.edges.map((edge) => edge.node.mrn),
  hasNextPage: merged.pageInfo.hasNextPage,
}));

// Status changes: afterSequence "0" replays the tenant's history first, then goes live. Keep the
// last `sequence` seen and pass it after a reconnect to miss nothing.
const event = await new Promise((resolve, reject) => {
  const subscription = client
    .subscribe({ query: STATUS_CHANGES, variables: { afterSequence: "0" } })
    .subscribe({
      next: ({ data }) => {
        subscription.unsubscribe();
        resolve(data.recordStatusChanged);
      },
      error: reject,
    });
});
console.log(JSON.stringify({ event }));

client.stop();
await wsClient.dispose();

// The network layer: peers, the swarm, bazil's peer protocol and access-controlled replication.
export { PeerNetwork, type PeerNetworkOptions, type PeerStatus, type RemoteView } from './swarm.js'
export { AccessControl, type Role } from './access.js'
export { nodeHost, type NetHost, type WritersSink } from './host.js'
export { PeerRegistry, type PeerRecord } from './peers.js'
export { readNetConfig, parseHostPort, parseBootstrap, formatHostPort, type NetConfig, type HostPort } from './config.js'
export { CHANNEL_PROTOCOL, MAX_MESSAGE_BYTES, ProtocolError, decodeMessage, encodeMessage, type Message } from './protocol.js'
export { discoveryKey } from './replication.js'
export { checkUdpPort, abandon } from './udp.js'

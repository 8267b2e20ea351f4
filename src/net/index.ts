// The network layer: peers, the swarm, bazil's peer protocol and access-controlled replication.
export { PeerNetwork, type PeerNetworkOptions, type PeerStatus, type RemoteView } from './swarm.js'
export { PeerRegistry, type PeerRecord, PEERS_FILE } from './peers.js'
export { readNetConfig, parseHostPort, parseBootstrap, formatHostPort, CONFIG_FILE, type NetConfig, type HostPort } from './config.js'
export { CHANNEL_PROTOCOL, MAX_MESSAGE_BYTES, ProtocolError, decodeMessage, encodeMessage, type Message } from './protocol.js'
export { discoveryKey, type WritersOf } from './replication.js'
export { serverNetwork } from './server-handle.js'
export { checkUdpPort, abandon } from './udp.js'

// Creation stacks of the program's threads and sockets, so that a leaked thread or connection can
// be named by the code that made it.
//
// Threads are keyed by kernel thread id and recorded by the thread itself as it starts; they are
// forgotten when the thread's start routine returns or unwinds (pthread_exit, cancellation). Socket
// descriptors are kept in an array indexed by descriptor with the socket's inode, so that a
// descriptor closed behind the agent's back (and reused for something else) is not misnamed; close()
// forgets one without a lock. Thread-safe; the thread list has its own mutex, held across fork().
#ifndef LEAKGATE_AGENT_SRC_RESOURCE_TABLE_H_
#define LEAKGATE_AGENT_SRC_RESOURCE_TABLE_H_

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

namespace leakgate::agent {

void RecordThreadStart(pid_t tid, uint32_t stack_id);
void ForgetThread(pid_t tid);

void RecordSocket(int fd, uint32_t stack_id);
void ForgetDescriptor(int fd);

struct ThreadCreation {
  pid_t tid;
  uint32_t stack_id;
};

// Copies up to `capacity` recorded threads; returns how many were copied.
size_t CopyThreadCreations(ThreadCreation* out, size_t capacity);
size_t ThreadCreationCount();

struct SocketCreation {
  int fd;
  uint32_t stack_id;
  uint64_t inode;
};

// Calls `visit` for each descriptor with a recorded creation stack (not yet checked to be open).
void ForEachSocketCreation(void (*visit)(const SocketCreation&, void*), void* context);

void LockResourceTable();
void UnlockResourceTable();

}  // namespace leakgate::agent

#endif  // LEAKGATE_AGENT_SRC_RESOURCE_TABLE_H_

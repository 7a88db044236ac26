#pragma once

namespace copycat {

/// Makes the Qt event loops started from now on (QCoreApplication's and
/// every thread's, the engine's own among them) use Qt's poll dispatcher
/// instead of GLib's: a wake-up then costs fewer system calls, which on a
/// 2-core VM nearly doubled one client's writes/s (662 -> 1,172). It sets
/// QT_NO_GLIB=1 unless QT_NO_GLIB or QT_NO_THREADED_GLIB is already set, so a
/// user's choice stands (QT_NO_GLIB set but empty keeps GLib). Call it first
/// in main(), before any thread starts.
void useFastEventLoop();

}  // namespace copycat
